"""Every command's settings: flags with help, and secrets never taken from the command line."""

from __future__ import annotations

import pytest

from logwarden.core.cli import main


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["serve", "--auth-tokens", '["t0ken"]'], "--auth-tokens"),
        (["serve", "--admin-tokens", '["t"]'], "--admin-tokens"),
    ],
)
def test_a_secret_given_as_a_flag_is_refused_naming_the_file_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag}-file" in err and "t0ken" not in err
