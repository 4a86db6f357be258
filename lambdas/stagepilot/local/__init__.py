"""Local stand-ins (IVS real-time API) and ``stagepilot simulate``. Not shipped in the Lambda zip."""
