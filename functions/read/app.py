"""Read Lambda (IAM-authorized routes): sessions of a day, skew history, traces, day stats.

A thin adapter over ``skewgate.aws.read.ReadApp``, which the local runner calls too.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from skewgate.aws.read import build_read_app

logger = Logger()
app = build_read_app()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.handle(event)
