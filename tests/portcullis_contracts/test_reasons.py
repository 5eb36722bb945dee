from portcullis_contracts.reasons import POLICY_REASONS, policy_reason_text


def test_every_policy_reason_reads_with_names_at_the_edge_and_with_this_in_the_kit() -> None:
    for reason in POLICY_REASONS:
        edge = policy_reason_text(
            reason, server="server 'demo'", tool="tool 'echo'", client="client application 'cursor'", request="request"
        )
        kit = policy_reason_text(
            reason, server="this server", tool="this tool", client="your client application", request="call"
        )
        assert edge and kit and "{" not in edge + kit


def test_a_client_refused_by_the_policy_is_named_as_the_client_application() -> None:
    text = policy_reason_text(
        "client_not_allowed", server="server 'demo'", tool="", client="client application 'cursor'", request=""
    )
    assert text == "client application 'cursor' may not use server 'demo'"


def test_a_code_no_policy_gives_has_no_sentence_here() -> None:
    assert policy_reason_text("authz_unavailable", server="", tool="", client="", request="") is None
