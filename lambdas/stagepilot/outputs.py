"""The StagePilot stack's output names: written by the stack (infra/stack.py), read by the CLI
(cli/resources.py), written by the sandbox (local/sandbox.py) and the tests' stacks. One place, so they agree.
"""

from __future__ import annotations

from typing import Final

OUTPUT_TABLE_NAME: Final = "TableName"
OUTPUT_ALARM_TOPIC_ARN: Final = "AlarmTopicArn"
OUTPUT_FLAG_BUS_NAME: Final = "FlagBusName"
OUTPUT_REDRIVE_ROLE_ARN: Final = "RedriveRoleArn"
OUTPUT_VIEWER_POLICY_ARN: Final = "ViewerPolicyArn"
OUTPUT_OPERATOR_POLICY_ARN: Final = "OperatorPolicyArn"
OUTPUT_ADMIN_POLICY_ARN: Final = "AdminPolicyArn"
OUTPUT_BAN_READER_POLICY_ARN: Final = "BanReaderPolicyArn"
OUTPUT_DASHBOARD_NAME: Final = "DashboardName"
OUTPUT_TOKEN_URL: Final = "TokenUrl"
OUTPUT_TOKEN_ISSUER_POLICY_ARN: Final = "TokenIssuerPolicyArn"
OUTPUT_CONVERGENCE_FUNCTION_NAME: Final = "ConvergenceFunctionName"


def pipeline_id(automation: str) -> str:
    """``composition`` -> ``Composition``: an automation's pipeline construct id and its outputs' prefix."""
    return automation.capitalize()


def output_queue_url(automation: str) -> str:
    return f"{pipeline_id(automation)}QueueUrl"


def output_dlq_url(automation: str) -> str:
    return f"{pipeline_id(automation)}DlqUrl"


def output_function_name(automation: str) -> str:
    return f"{pipeline_id(automation)}FunctionName"
