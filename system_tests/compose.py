"""What docker compose gives a service of docker-compose.yml, computed without a Docker engine.

Reads .env the way compose does (plain ``KEY=VALUE`` lines), interpolates ``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``
(nested too) and ``$$``, and merges the image's ``ENV``, ``env_file`` and ``environment`` in
compose's order of precedence. Only what this repository's files use is supported; anything
else raises instead of guessing.
"""

import json
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
DOTENV_LINE = re.compile(rf"^({NAME})=([^'\"$\s]*)$")


class ComposeError(Exception):
    """compose would refuse the file (a required variable is missing) or it is unsupported."""


def dotenv_parse(text: str) -> dict[str, str]:
    """Return the variables of a .env file of plain ``KEY=VALUE`` lines and ``#`` comments."""
    variables = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = DOTENV_LINE.match(line)
        if not match:
            raise ComposeError(f"line {number} is not a plain KEY=VALUE line: {line!r}")
        variables[match[1]] = match[2]
    return variables


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ComposeError(f"unclosed ${{ in {text!r}")


def _expand(expression: str, variables: dict[str, str]) -> str:
    match = re.fullmatch(rf"({NAME})(?:(:?[-?+])(.*))?", expression, re.DOTALL)
    if not match:
        raise ComposeError(f"unsupported interpolation ${{{expression}}}")
    name, operator, argument = match.groups()
    value = variables.get(name)
    present = bool(value) if operator and operator.startswith(":") else value is not None
    if operator is None:
        return value or ""
    if operator.endswith("-"):
        return value if present else interpolate(argument, variables)
    if operator.endswith("?"):
        if not present:
            raise ComposeError(f"{name}: {interpolate(argument, variables)}")
        return value
    return interpolate(argument, variables) if present else ""


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Return ``text`` with compose's ``$`` interpolation applied from ``variables``."""
    out, index = [], 0
    while index < len(text):
        if text[index] != "$":
            out.append(text[index])
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 1)
            out.append(_expand(text[index + 2 : end], variables))
            index = end + 1
        elif match := re.match(NAME, text[index + 1 :]):
            out.append(variables.get(match[0], ""))
            index += 1 + len(match[0])
        else:
            raise ComposeError(f"a lone $ in {text!r} (compose wants $$)")
    return "".join(out)


def interpolate_tree(node, variables: dict[str, str]):
    """Return a loaded YAML tree with every string interpolated (keys stay as they are)."""
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, variables) for value in node]
    return node


def dockerfile_env(text: str) -> dict[str, str]:
    """Return the variables the Dockerfile's ``ENV KEY=VALUE ...`` instructions set."""
    joined = re.sub(r"\\\n", " ", text)
    variables = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[len("ENV ") :]):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise ComposeError(f"ENV without = is not supported: {line!r}")
                variables[name] = value
    return variables


def dockerfile_cmd(text: str) -> list[str]:
    """Return the Dockerfile's exec-form ``CMD``."""
    (line,) = [line for line in text.splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD ") :])


def compose_services(dotenv: Path) -> dict[str, dict]:
    """Return docker-compose.yml's services interpolated from ``dotenv`` (compose's .env)."""
    variables = dotenv_parse(dotenv.read_text())
    tree = yaml.safe_load(COMPOSE_FILE.read_text())
    return {
        name: interpolate_tree(service, variables) for name, service in tree["services"].items()
    }


def service_environment(service: dict, *, dotenv: Path) -> dict[str, str]:
    """Return the environment a built service's container gets: image ENV < env_file < environment.

    ``env_file`` entries are read relative to the compose file, except ``.env``, which is
    ``dotenv`` (the same file compose interpolates from).
    """
    environment = dockerfile_env(DOCKERFILE.read_text()) if "build" in service else {}
    env_files = service.get("env_file", [])
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        path = dotenv if env_file == ".env" else COMPOSE_FILE.parent / env_file
        environment.update(dotenv_parse(path.read_text()))
    declared = service.get("environment", {})
    if not isinstance(declared, dict):
        raise ComposeError("environment must be a mapping here")
    environment.update(
        {name: "" if value is None else str(value) for name, value in declared.items()}
    )
    return environment
