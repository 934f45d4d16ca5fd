"""Render each sample's chat messages and expected answer from the suite's Jinja2 templates.

Templates run in Jinja's sandbox (a suite may come from a pull request) with StrictUndefined, so a
field missing from a sample is an error that names the sample, raised before any model is called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit.config.dataset import Sample
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError, TemplateError


@dataclass(frozen=True)
class RenderedSample:
    """A sample ready to send: its chat messages and its expected answer."""

    sample: Sample
    messages: list[dict[str, str]]
    target: Any


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                                        autoescape=False)
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    return env


class PromptRenderer:
    """Compiles the suite's templates once and renders them per sample."""

    def __init__(self, loaded: LoadedSuite) -> None:
        self._env = _environment()
        spec = loaded.suite.prompt
        self._system = self._compile(loaded, "prompt.system", spec.system, spec.system_file)
        self._user = self._compile(loaded, "prompt.user", spec.user, spec.user_file)
        target = loaded.suite.target
        self._target_field = target.field if target else None
        self._target = (self._compile(loaded, "target.template", target.template, None)
                        if target and target.template else None)

    def _compile(self, loaded: LoadedSuite, key: str, inline: str | None,
                 file: str | None) -> jinja2.Template | None:
        source = inline
        if file:
            source = loaded.resolve(file).read_text(encoding="utf-8")
        if source is None:
            return None
        try:
            return self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template syntax error: {exc.message} (template line {exc.lineno})",
                              file=str(loaded.path), key=key) from None

    @staticmethod
    def _render(template: jinja2.Template, sample: Sample, what: str) -> str:
        try:
            return template.render(**sample.fields)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"sample '{sample.id}': {what} uses a field the sample lacks "
                                f"({exc.message}); fields are {sorted(sample.fields)[:12]}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"sample '{sample.id}': {what} tried an unsafe operation ({exc})") from None
        except Exception as exc:  # any other template runtime failure is the template's fault
            raise TemplateError(f"sample '{sample.id}': {what} failed: {type(exc).__name__}: {exc}") from None

    def render(self, sample: Sample) -> RenderedSample:
        messages: list[dict[str, str]] = []
        if self._system is not None:
            messages.append({"role": "system", "content": self._render(self._system, sample, "prompt.system")})
        assert self._user is not None
        messages.append({"role": "user", "content": self._render(self._user, sample, "prompt.user")})
        target: Any = None
        if self._target_field is not None:
            if self._target_field not in sample.fields:
                raise TemplateError(f"sample '{sample.id}': target field '{self._target_field}' is "
                                    f"missing; fields are {sorted(sample.fields)[:12]}")
            target = sample.fields[self._target_field]
        elif self._target is not None:
            target = self._render(self._target, sample, "target.template")
        return RenderedSample(sample=sample, messages=messages, target=target)

    def render_all(self, samples: list[Sample]) -> list[RenderedSample]:
        """Render every sample; the first failure stops everything before any model call."""
        return [self.render(s) for s in samples]
