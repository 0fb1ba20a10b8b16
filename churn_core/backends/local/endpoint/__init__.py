"""A local endpoint: its supervisor, its model server (SageMaker's container contract) and their files."""
