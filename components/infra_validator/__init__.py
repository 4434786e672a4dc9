"""InfraValidator: the candidate in a real model server before it may be pushed."""
