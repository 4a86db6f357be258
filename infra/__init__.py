"""The CDK app of stagepilot: ``stack`` composes, ``pipeline`` builds one automation, ``bundling`` packages
the Lambda code offline, ``names`` holds construct ids and output names."""
