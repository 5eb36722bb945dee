from pydantic import BaseModel, ValidationError

from portcullis_contracts.problems import validation_problems


class _Inner(BaseModel):
    port: int


class _Outer(BaseModel):
    name: str
    inner: _Inner


def _errors(value: object) -> ValidationError:
    try:
        _Outer.model_validate(value)
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


def test_each_problem_is_named_by_its_dotted_location() -> None:
    exc = _errors({"inner": {"port": "x"}})
    assert validation_problems(exc.errors()) == (
        "name: Field required; inner.port: Input should be a valid integer, unable to parse string as an integer"
    )


def test_limit_keeps_only_the_first_problems() -> None:
    exc = _errors({"inner": {"port": "x"}})
    assert validation_problems(exc.errors(), limit=1) == "name: Field required"


def test_a_problem_of_the_whole_object_is_named_by_root() -> None:
    exc = _errors([])
    assert validation_problems(exc.errors(), root="body").startswith("body: ")
    assert validation_problems(exc.errors(), env_prefix="KIT_DEMO_", root="SETTINGS").startswith("KIT_DEMO_SETTINGS: ")


def test_with_an_env_prefix_a_problem_is_named_by_its_environment_variable() -> None:
    exc = _errors({"name": "n", "inner": {"port": "x"}})
    assert validation_problems(exc.errors(), env_prefix="PORTCULLIS_SQL_").startswith("PORTCULLIS_SQL_INNER_PORT: ")
