"""``evalkit comment``: the gate's verdict as one pull-request comment, posted once and updated after.

The comment carries a hidden marker per suite (``<!-- evalkit-gate: KEY -->``); a later run finds the
comment that starts with it and edits it instead of adding another, so a pull request pushed ten times
has one evalkit comment per suite, showing the latest verdict. It speaks GitHub's REST API with the
standard library (``GITHUB_API_URL``, ``GITHUB_TOKEN``), which needs ``pull-requests: write`` (or
``issues: write``) on the job's token.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from evalkit.errors import PublishError

MAX_BODY_CHARS = 65_000  # GitHub refuses comment bodies over 65,536 characters
TIMEOUT_S = 30.0


def marker(key: str) -> str:
    """The hidden first line that identifies evalkit's comment for one suite."""
    return f"<!-- evalkit-gate: {key.replace('--', '- -')} -->"


def comment_body(key: str, markdown: str, report_url: str | None) -> str:
    """Marker, the gate's Markdown (cut to fit GitHub's limit, saying so) and the report's link."""
    tail = f"\n\n📄 [The full HTML report]({report_url}) (a build artifact of this run)." if report_url else ""
    budget = MAX_BODY_CHARS - len(marker(key)) - len(tail) - 200
    if len(markdown) > budget:
        markdown = markdown[:budget].rsplit("\n", 1)[0] + "\n\n… (cut to fit a GitHub comment; the job summary " \
                                                          "and the report have it all)"
    return f"{marker(key)}\n{markdown.rstrip()}{tail}\n"


class GitHub:
    """The three REST calls a comment needs: list an issue's comments, create one, edit one."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url, self.token = api_url.rstrip("/"), token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[Any, str]:
        request = urllib.request.Request(
            self.api_url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "evalkit",
                     **({"Content-Type": "application/json"} if body is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"null"), response.headers.get("Link", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            hint = (" — the job's token needs `permissions: pull-requests: write` (a pull request from a fork gets "
                    "a read-only token)" if exc.code in (401, 403, 404) else "")
            raise PublishError(f"GitHub said {exc.code} to {method} {path}: {detail}{hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise PublishError(f"cannot reach GitHub at {self.api_url}: {exc}") from None

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch, link = self._call("GET", f"/repos/{repo}/issues/{number}/comments?per_page=100&page={page}")
            found += batch
            if 'rel="next"' not in link or not batch:
                return found
            page += 1

    def create(self, repo: str, number: int, body: str) -> dict[str, Any]:
        created, _ = self._call("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        return dict(created)

    def update(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        updated, _ = self._call("PATCH", f"/repos/{repo}/issues/comments/{comment_id}", {"body": body})
        return dict(updated)


def upsert_comment(github: GitHub, repo: str, number: int, key: str, body: str) -> tuple[str, dict[str, Any]]:
    """Edit the comment that starts with this suite's marker, or create it: ('updated' | 'created', comment)."""
    mine = [c for c in github.comments(repo, number) if str(c.get("body") or "").startswith(marker(key))]
    if mine:
        return "updated", github.update(repo, int(mine[-1]["id"]), body)
    return "created", github.create(repo, number, body)


@click.command()
@click.option("--markdown", "markdown", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The gate's Markdown (what `evalkit gate --markdown FILE` wrote).")
@click.option("--repo", default=lambda: os.environ.get("GITHUB_REPOSITORY"), show_default="$GITHUB_REPOSITORY",
              help="OWNER/NAME of the repository.")
@click.option("--pr", "number", required=True, type=click.IntRange(min=1), help="The pull request's number.")
@click.option("--key", default="evalkit", show_default=True,
              help="What tells this comment apart from others evalkit posts there (e.g. the suite's path).")
@click.option("--report-url", help="Link to the HTML report (e.g. the upload-artifact step's artifact-url).")
@click.option("--api-url", default=lambda: os.environ.get("GITHUB_API_URL", "https://api.github.com"),
              show_default="$GITHUB_API_URL or https://api.github.com")
def comment(markdown: str, repo: str | None, number: int, key: str, report_url: str | None, api_url: str) -> None:
    """Post the gate's verdict on a pull request as one comment, updated (not duplicated) on every run.

    The token is read from GITHUB_TOKEN (or GH_TOKEN); it needs pull-requests: write.
    """
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if not token:
        raise PublishError("set GITHUB_TOKEN (in a workflow: `env: GITHUB_TOKEN: ${{ github.token }}`, with "
                           "`permissions: pull-requests: write`)")
    if not repo or "/" not in repo:
        raise PublishError("name the repository as OWNER/NAME: --repo, or GITHUB_REPOSITORY")
    body = comment_body(key, Path(markdown).read_text(encoding="utf-8"), report_url)
    action, posted = upsert_comment(GitHub(api_url, token), repo, number, key, body)
    click.echo(f"{action} comment {posted.get('html_url') or posted.get('id')} on {repo}#{number}")


COMMANDS = [comment]
