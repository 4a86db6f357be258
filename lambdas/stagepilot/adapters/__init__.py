"""Adapters: the only code that talks to AWS (IVS real-time, DynamoDB, SQS)."""
