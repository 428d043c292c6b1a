"""The FastAPI service and the command line: how orchestrators, marketers and data scientists use it."""
