"""Forward Lambda: the table's DynamoDB stream → corrected OTLP to a collector or AWS X-Ray.

A thin adapter: the logic is ``skewgate.aws.forward.ForwardApp`` in the shared layer, which the
local stream poller calls too. Settings, the HTTP pool and the signer are built once per
container. Delivery is at-least-once; see ``skewgate.aws.forward`` and README.md ("Forwarding
corrected spans").
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from skewgate.aws.forward import build_forward_app

logger = Logger()
metrics = Metrics()
app = build_forward_app(metrics=metrics)
metrics.set_default_dimensions(target=app.settings.forward_target)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.handle(event, context)
