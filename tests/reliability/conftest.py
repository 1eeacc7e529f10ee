from tests.runtime.conftest import lambda_service, load_function, runtime_env  # noqa: F401 - shared fixtures
