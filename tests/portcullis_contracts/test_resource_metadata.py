from portcullis_contracts.resource_metadata import (
    canonical_uri,
    challenge,
    protected_resource_metadata,
    resource_metadata_url,
)


def test_the_metadata_url_inserts_the_well_known_path_before_the_resource_path() -> None:
    resource = canonical_uri("https://gw.example.com/", "demo")
    assert resource == "https://gw.example.com/servers/demo/mcp"
    assert (
        resource_metadata_url(resource)
        == "https://gw.example.com/.well-known/oauth-protected-resource/servers/demo/mcp"
    )


def test_the_metadata_names_the_resource_its_issuer_and_scope() -> None:
    document = protected_resource_metadata(resource="r", issuer="https://as", scope="mcp", name="demo")
    assert document == {
        "resource": "r",
        "authorization_servers": ["https://as"],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
        "resource_name": "demo",
    }


def test_a_challenge_without_a_presented_token_carries_no_error_code() -> None:
    assert (
        challenge(resource_metadata_url="https://m", scope="mcp") == 'Bearer resource_metadata="https://m", scope="mcp"'
    )


def test_a_challenge_for_a_refused_token_names_the_error_with_quotes_made_safe() -> None:
    www = challenge(resource_metadata_url="https://m", error="invalid_token", description='bad "sig" \\ here')
    assert www == 'Bearer resource_metadata="https://m", error="invalid_token", error_description="bad \'sig\'  here"'


def test_a_challenge_with_nothing_to_say_is_the_bare_scheme() -> None:
    assert challenge() == "Bearer"
