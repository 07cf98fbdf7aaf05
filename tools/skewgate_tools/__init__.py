"""skewgate's operator and developer tools; not part of the Lambda layer.

``skewgate`` (the CLI, :mod:`.cli`), the local dashboard (:mod:`.dashboard`), the timeline plot
(:mod:`.plot`), the local runner (:mod:`.local`: DynamoDB Local, the API Gateway emulation,
the stream poller), the demo traffic (:mod:`.demo`) and the dead-letter redrive (:mod:`.redrive`).
"""
