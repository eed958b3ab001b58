"""The local test rig: the moto server as the AWS endpoint, real MySQL-compatible
engines, the stack deployed from template.yaml, and a Lambda runtime that runs each
function's real handler in-process. Shared by the tests and by ``make demo``."""
