"""The words stay true: the README, the settings example and ARCHITECTURE.md agree with the code.

A new operator copies what the README shows: the settings example, the lines `validate`
and the change log print, the schema and settings tables, the Docker and systemd
recipes. Each of those is taken from the file itself and checked against the code (or
the command is run), so that an edit of either side that makes them disagree fails
here. The nginx snippet and what `serve` serves are run in test_words_served.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from pydantic import TypeAdapter

from klash_sync.programme.load import parse
from klash_sync.render.changes import describe, summary
from klash_sync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config" / "klash-sync.env.example").read_text(encoding="utf-8")
SHIPPED = ROOT / "config" / "programme.toml"
# Not settings: the programme names these (a mentor's `password_env`), one per mentor.
PASSWORD_VARIABLES = "KLASH_PW_"


def env_names() -> dict[str, str]:
    """Settings field name for each ``KLASH_*`` variable."""
    return {f"KLASH_{name.upper()}": name for name in Settings.model_fields}


def is_unset(default: Any) -> bool:
    return default is None or default == ""


def same_as_default(name: str, text: str) -> bool:
    """Does ``text``, read as the setting's value, give the setting's default?"""
    field = Settings.model_fields[name]
    value = TypeAdapter(field.annotation).validate_python(text)
    return bool(value == field.default)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLASH_")}
    return subprocess.run([sys.executable, "-m", "klash_sync", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


# ------------------------------------------------------------ the settings example


def example_entries() -> dict[str, tuple[str, str]]:
    """``KLASH_X`` -> (value shown, the comment lines just above it)."""
    entries: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in EXAMPLE.splitlines():
        match = re.fullmatch(r"# (KLASH_[A-Z_]+)=(.*)", line)
        if match:
            entries[match[1]] = (match[2], " ".join(comment))
            comment = []
        elif line.startswith("#"):
            comment.append(line)
        else:
            comment = []
    return entries


def test_the_settings_example_shows_every_setting_with_its_default():
    entries = example_entries()
    for env, name in env_names().items():
        assert env in entries, f"{env} is missing from config/klash-sync.env.example"
        value, comment = entries[env]
        default = Settings.model_fields[name].default
        if is_unset(default):
            assert value == "", f"{env} has no default, the example shows {value!r}"
            assert "no default" in comment.lower(), f"{env}: say 'no default' above it"
        else:
            assert same_as_default(name, value), f"{env}={value} is not the default {default!r}"


def test_the_settings_example_used_as_a_dotenv_file_gives_the_defaults(tmp_path, monkeypatch):
    """Every shown value uncommented, as an operator would, and read the way klash-sync
    reads `.env`: the settings are the defaults."""
    for name in list(os.environ):
        if name.startswith("KLASH_"):
            monkeypatch.delenv(name)
    lines = [f"{env}={value}" for env, (value, _) in example_entries().items()
             if value and not env.startswith(PASSWORD_VARIABLES)]
    dotenv = tmp_path / ".env"
    dotenv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(lines) >= 15
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]  (a pydantic-settings init option)
    for name, field in Settings.model_fields.items():
        assert getattr(settings, name) == field.default, name


def test_the_settings_example_names_nothing_that_is_not_a_setting():
    settings = env_names()
    for env in example_entries():
        assert env in settings or env.startswith(PASSWORD_VARIABLES), env


def test_no_value_in_the_settings_example_carries_a_comment():
    """systemd's EnvironmentFile would take `# …` after a value as part of the value."""
    for env, (value, _) in example_entries().items():
        assert "#" not in value, env


# ------------------------------------------------------------ the README's settings


def settings_table() -> dict[str, str]:
    """``KLASH_X`` -> its default cell, from the README's settings table."""
    rows = re.findall(r"^\| `(KLASH_[A-Z_]+)` \| ([^|]+) \|", README, re.M)
    return {env: cell.strip() for env, cell in rows}


def test_the_readme_settings_table_lists_every_setting_with_its_default():
    table = settings_table()
    for env, name in env_names().items():
        assert env in table, f"{env} is missing from the README's settings table"
        default = Settings.model_fields[name].default
        cell = table[env]
        if env == "KLASH_PUBLIC_URL":
            # Unset, the listening address stands in, as the table says.
            assert cell == "`http://HOST:PORT`"
            assert Settings(host="h.example", port=1234).base_url == "http://h.example:1234"
        elif is_unset(default):
            assert cell == "none", env
        else:
            assert cell.startswith("`"), env
            assert cell.endswith("`"), env
            assert same_as_default(name, cell.strip("`")), f"{env}: {cell} is not {default!r}"
    assert set(table) == set(env_names())


def test_every_klash_variable_the_readme_names_is_a_setting():
    named = set(re.findall(r"KLASH_[A-Z_]*[A-Z]", README))
    unknown = {n for n in named if n not in env_names() and not n.startswith(PASSWORD_VARIABLES)}
    assert not unknown, f"the README names variables that are no settings: {sorted(unknown)}"


# ------------------------------------------------------------ what the commands print


def test_the_readme_validate_example_is_what_validate_prints(tmp_path):
    shown = re.search(r"with the\s+Vantaa session's date written as `(date = [^`]+)`:\s+```\n(.*?)\n```",
                      README, re.S)
    assert shown, "the README's validate example"
    edit, line = shown[1], shown[2]
    config = tmp_path / "config"
    config.mkdir()
    text = SHIPPED.read_text(encoding="utf-8")
    assert text.count("date = 2019-10-08\n") == 1
    (config / "programme.toml").write_text(text.replace("date = 2019-10-08\n", edit + "\n"))
    result = run_cli("validate", cwd=tmp_path)
    # Either stream: which one carries problems is the CLI's choice, not the README's.
    printed = result.stdout + result.stderr
    assert line in printed.splitlines(), printed


def test_the_readme_words_on_skipped_and_repeated_hours_are_what_validate_prints(tmp_path):
    said = re.search(r'does not exist with "([^"]+)", a time that\s+happens twice with the two offsets '
                     r'to choose from \("([^"]+)"\)', README)
    assert said, "the README's sentence on local times that do not exist or happen twice"
    skipped, repeated = said[1], said[2].replace("\n", " ")
    text = SHIPPED.read_text(encoding="utf-8")
    for start, end, words in (("2020-03-29T03:30:00", "2020-03-29T05:00:00", skipped),
                              ("2019-10-27T03:30:00", "2019-10-27T05:00:00", repeated)):
        path = tmp_path / f"{start[:10]}.toml"
        path.write_text(text.replace("date = 2019-10-08\n", f"start = {start}\nend = {end}\n"))
        result = run_cli("validate", "--programme", str(path), cwd=tmp_path)
        assert result.returncode != 0
        assert words in result.stdout + result.stderr, result.stderr


def test_the_readme_change_log_example_is_what_the_code_writes():
    shown = re.search(r'moving the Vantaa session .*? shows\s+"([^"]+)"\s+and\s+"([^"]+)"', README, re.S)
    assert shown, "the README's change-log example"
    moved, cancelled = shown[1].replace("\n", " "), shown[2].replace("\n", " ")

    text = SHIPPED.read_text(encoding="utf-8")
    # The edit the README describes: Vantaa from 8.10. (all day) to 9.10. 9–12, and the
    # joint session of 15.10. cancelled.
    edited = text.replace("date = 2019-10-08\n",
                          "start = 2019-10-09T09:00:00\nend = 2019-10-09T12:00:00\n")
    edited = edited.replace("date = 2019-10-15\n", 'date = 2019-10-15\nstatus = "cancelled"\n')
    assert edited.count("2019-10-09T") == 2
    assert edited.count('status = "cancelled"') == text.count('status = "cancelled"') + 1
    before, after = parse(text.encode(), "before.toml"), parse(edited.encode(), "after.toml")

    def sentence(session_id: str) -> str:
        old = next(s for s in before.sessions if s.id == session_id)
        new = next(s for s in after.sessions if s.id == session_id)
        fi, _en, _sv = describe("changed", summary(old, before), summary(new, after))
        return fi

    assert sentence("vantaa-2019-10-08") == moved
    assert sentence("yhteinen-2019-10-15") == cancelled


# ------------------------------------------------------ ARCHITECTURE.md, dependencies, schema


def test_the_folder_map_names_every_package_and_module():
    """A module added without a word in ARCHITECTURE.md's folder map fails here."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_/]+(?:\.py|/))` \| (.+) \|$", text, re.M))
    package = ROOT / "klash_sync"
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.name in ("__init__.py", "__main__.py"):
            continue
        if len(relative.parts) == 1:
            if relative.name not in rows:
                missing.append(relative.as_posix())
            continue
        row = rows.get(relative.parent.as_posix() + "/", "")
        if not re.search(rf"`{relative.stem}[`.]", row):
            missing.append(relative.as_posix())
    assert not missing, f"not in ARCHITECTURE.md's folder map: {missing}"


def test_the_floors_in_architecture_md_are_the_import_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c["layers"] for c in contracts["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers")
    floors = " > ".join(layer.replace("klash_sync.", "") for layer in layers)
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert f"```\n{floors}\n```" in text, floors


def test_the_readme_says_why_each_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    section = README.split("### Why each dependency", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([a-z][^|]*?) \|", section, re.M)
    named = {name.strip() for row in rows for name in row.split(",")}
    for requirement in project["dependencies"]:
        assert Requirement(requirement).name in named, requirement


def test_the_readme_schema_tables_name_every_field_of_the_programme():
    from klash_sync.programme.model import CalDAVTarget, Mentor, ProgrammeInfo, Session

    schema = README.split("### Schema", 1)[1].split("\n## ", 1)[0]
    for heading, model in (("`[programme]`", ProgrammeInfo), ("`[[mentors]]`", Mentor),
                           ("`[mentors.caldav]`", CalDAVTarget), ("`[[sessions]]`", Session)):
        table = "|" + schema.split(heading, 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
        keys = {k for cell in re.findall(r"^\| ([^|]+) \|", table, re.M)
                for k in re.findall(r"`([a-z_]+)`", cell)}
        assert keys, heading
        assert keys <= set(model.model_fields), (heading, keys - set(model.model_fields))
        for field in model.model_fields:
            assert field in keys or f"`{field}`" in table, (heading, field)


# ------------------------------------------------------------ Docker and systemd


def test_the_readme_docker_words_match_the_dockerfile():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    said = README.split("### Docker", 1)[1].split("### systemd", 1)[0]
    assert "listens on `0.0.0.0:8080` inside the container" in said
    assert "KLASH_HOST=0.0.0.0" in dockerfile
    assert "KLASH_PORT=8080" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert "state in the `/var/lib/klash-sync` volume" in said
    assert "KLASH_STATE_DIR=/var/lib/klash-sync" in dockerfile
    assert 'VOLUME ["/var/lib/klash-sync"]' in dockerfile
    assert "`HEALTHCHECK` on `/healthz`" in said
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", dockerfile, re.M)
    assert "pinned by `constraints.txt`" in said
    assert "-c constraints.txt" in dockerfile
    # Non-root, with the uid the State section names for volume rights.
    uid = re.search(r"uid (\d+) in our Dockerfile", README)
    assert uid
    assert f"--uid {uid[1]} " in dockerfile
    assert re.search(r"^USER klash$", dockerfile, re.M)


def test_systemd_and_docker_wait_longer_than_the_stop_takes():
    """Both kill the service once their own stop timeout is over: it must exceed the
    daemon's own bound (KLASH_STOP_TIMEOUT), or an abandoned stop would end in SIGKILL."""
    bound = Settings.model_fields["stop_timeout"].default
    unit = (ROOT / "deploy" / "klash-sync.service").read_text(encoding="utf-8")
    systemd = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)
    assert systemd
    assert int(systemd[1]) > bound
    said = README.split("### Docker", 1)[1].split("### systemd", 1)[0]
    docker = re.search(r"docker run .*--stop-timeout (\d+)", said)
    assert docker
    assert int(docker[1]) > bound  # Docker's own default, 10 s, is not enough


def test_the_readme_systemd_recipe_matches_the_unit():
    unit = (ROOT / "deploy" / "klash-sync.service").read_text(encoding="utf-8")
    said = README.split("### systemd", 1)[1].split("\n### ", 1)[0]
    venv = re.search(r"python3 -m venv (\S+) ", said)
    assert venv
    assert f"ExecStart={venv[1]}/bin/klash-sync run" in unit
    user = re.search(r"useradd --system --home (\S+) (\S+)", said)
    assert user
    assert f"User={user[2]}" in unit
    assert f"WorkingDirectory={user[1]}" in unit
    assert f"Environment=KLASH_STATE_DIR={user[1]}" in unit
    assert "/etc/klash-sync/programme.toml" in said
    assert "Environment=KLASH_PROGRAMME=/etc/klash-sync/programme.toml" in unit
    assert "/etc/klash-sync/klash-sync.env" in said
    assert "EnvironmentFile=-/etc/klash-sync/klash-sync.env" in unit
    assert "reload klash-sync    # SIGHUP" in said
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
