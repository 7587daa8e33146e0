"""Fixes to LocalStack 4.9.2 that make it behave as AWS does where the project depends on it,
applied when LocalStack starts (a ``localstack.hooks.on_infra_start`` hook). Each one is small,
says what AWS does, and is tested by the project's own tests against the running stack.

- **Function URLs and ``multipart/form-data`` without a boundary.** LocalStack rebuilds the body of
  a function URL request with ``rolo.request.restore_payload``, which reads the boundary with
  ``content_type.split("=")[1]`` and raises ``IndexError`` when there is none: the caller gets a
  500 ``InternalError`` and the function is never invoked. AWS passes such a request to the
  function (which answers it: the api says 415). Here the body is passed on as read instead.
"""

from __future__ import annotations

import logging

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)


@hooks.on_infra_start()
def function_urls_pass_multipart_without_boundary() -> None:
    from localstack.services.lambda_ import urlrouter

    original = urlrouter.restore_payload
    if getattr(original, "_resizer_fixed", False):
        return

    def restore_payload(request):
        if request.mimetype == "multipart/form-data" and "boundary=" not in (request.content_type or ""):
            return request.get_data()
        return original(request)

    restore_payload._resizer_fixed = True
    urlrouter.restore_payload = restore_payload
    LOG.info("resizer: function URLs pass multipart/form-data bodies without a boundary on to the function")
