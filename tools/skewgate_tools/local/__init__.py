"""Local development support: DynamoDB Local, the local HTTP runner and the stream poller.

Nothing in here is imported by the Lambda handlers; it may use boto3, PyYAML and subprocesses.
"""
