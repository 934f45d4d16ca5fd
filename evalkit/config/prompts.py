"""Render each sample's chat messages and expected answer from the suite's Jinja2 templates.

Templates run in Jinja's sandbox (a suite may come from a pull request) with StrictUndefined, so a
field missing from a sample is an error that names the sample, raised before any model is called.
The sandbox also bounds the work a template can ask for (:class:`_LimitedEnvironment`): a rendered text
of at most MAX_RENDERED_CHARS, at most MAX_LOOP_ITEMS items drawn from ``range`` per rendering, and no
repetition, power, padding or format width past those sizes; breaching one is a TemplateError naming
the sample, at validate time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.runtime
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit.config.dataset import Sample
from evalkit.config.suite import LoadedSuite
from evalkit.errors import ConfigError, TemplateError


@dataclass(frozen=True)
class RenderedSample:
    """A sample ready to send: its chat messages and its expected answer.

    ``target_label``: the target's class for label and labels outputs (``evalkit.scoring.labels``), set
    by ``scoring.prepare``; None otherwise.
    """

    sample: Sample
    messages: list[dict[str, str]]
    target: Any
    target_label: Any = None


def json_target(value: Any) -> Any:
    """A target that is the JSON text of an object or a list (``{{ x | tojson }}``, a CSV cell) as that
    object or list, so it is stored as a JSON value and compared as JSON; anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                parsed = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                return value
            if isinstance(parsed, (dict, list)):
                return parsed
    return value


MAX_RENDERED_CHARS = 10_000_000  # built by a template beyond its sample's own text (far past any context window)
MAX_LOOP_ITEMS = 1_000_000       # items drawn from range() in one rendering, nested loops together
_BIG_NUMBER = re.compile(r"\d{8,}")  # a width or precision of ten million or more in a format string


class TemplateLimitError(SecurityError):
    """A template asked for more than a prompt can need (size, loop work); raised before any model call."""


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounds on work: string/list repetition and powers are checked before
    they run (and never folded at compile time), ``range`` draws from a per-rendering budget, padding
    filters and format widths are capped, and the rendered text is cut off at MAX_RENDERED_CHARS."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.budget = MAX_LOOP_ITEMS
        self.globals["range"] = self._range
        for name in ("center", "indent", "wordwrap", "truncate"):
            self.filters[name] = self._bounded(self.filters[name])

    def _range(self, *args: int) -> Iterator[int]:
        items = range(*args)
        if len(items) > MAX_LOOP_ITEMS:
            raise TemplateLimitError(f"range of {len(items):,} items (the limit is {MAX_LOOP_ITEMS:,})")
        return self._drawn(items)

    def _drawn(self, items: range) -> Iterator[int]:
        for item in items:
            self.budget -= 1
            if self.budget < 0:
                raise TemplateLimitError(f"loops drew more than {MAX_LOOP_ITEMS:,} items from range()")
            yield item

    @staticmethod
    def _bounded(func: Callable[..., Any]) -> Callable[..., Any]:
        def bounded(*args: Any, **kwargs: Any) -> Any:
            for value in (*args[1:], *kwargs.values()):
                if isinstance(value, int) and value > MAX_RENDERED_CHARS:
                    raise TemplateLimitError(f"a width of {value:,} (the limit is {MAX_RENDERED_CHARS:,})")
            return func(*args, **kwargs)

        return bounded

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RENDERED_CHARS:
                    raise TemplateLimitError(f"repeating a {type(seq).__name__} of {len(seq):,} items {times:,} times "
                                             f"(the limit is {MAX_RENDERED_CHARS:,})")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 4096:
                raise TemplateLimitError(f"a power with exponent {right:,} (the limit is 4,096)")
        elif isinstance(left, str) and _BIG_NUMBER.search(left):
            raise TemplateLimitError("a %-format width or precision of ten million or more")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map") \
                and _BIG_NUMBER.search(owner):
            raise TemplateLimitError("a format width or precision of ten million or more")
        return super().wrap_str_format(value)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and value > MAX_RENDERED_CHARS:
                    raise TemplateLimitError(f"str.{getattr(__obj, '__name__', '?')} with {value:,} "
                                             f"(the limit is {MAX_RENDERED_CHARS:,})")
        return super().call(__context, __obj, *args, **kwargs)


def _environment() -> _LimitedEnvironment:
    env = _LimitedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    return env


def render_limited(env: _LimitedEnvironment, template: jinja2.Template, fields: dict[str, Any]) -> str:
    """Render with a fresh loop budget, stopping as soon as the text passes MAX_RENDERED_CHARS plus twice
    the sample's own text (a sample with huge fields may render them, a template may not build more)."""
    env.budget = MAX_LOOP_ITEMS
    limit = MAX_RENDERED_CHARS + 2 * sum(len(v) if isinstance(v, str) else len(str(v)) for v in fields.values())
    parts: list[str] = []
    size = 0
    for chunk in template.generate(**fields):
        size += len(chunk)
        if size > limit:
            raise TemplateLimitError(f"the rendered text passes {limit:,} characters")
        parts.append(chunk)
    return "".join(parts)


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

    def _render(self, template: jinja2.Template, sample: Sample, what: str) -> str:
        try:
            return render_limited(self._env, template, sample.fields)
        except TemplateLimitError as exc:
            raise TemplateError(f"sample '{sample.id}': {what} goes past a template limit: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"sample '{sample.id}': {what} uses a field the sample lacks "
                                f"({exc.message}); fields are {sorted(sample.fields)[:12]}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"sample '{sample.id}': {what} tried an unsafe operation ({exc})") from None
        except Exception as exc:  # any other template runtime failure is the template's fault
            raise TemplateError(f"sample '{sample.id}': {what} failed: {type(exc).__name__}: {exc}") from None

    def messages(self, sample: Sample) -> list[dict[str, str]]:
        """The chat messages of a sample (no target needed: also used on training data)."""
        messages: list[dict[str, str]] = []
        if self._system is not None:
            messages.append({"role": "system", "content": self._render(self._system, sample, "prompt.system")})
        assert self._user is not None
        messages.append({"role": "user", "content": self._render(self._user, sample, "prompt.user")})
        return messages

    def render(self, sample: Sample) -> RenderedSample:
        messages = self.messages(sample)
        target: Any = None
        if self._target_field is not None:
            if self._target_field not in sample.fields:
                raise TemplateError(f"sample '{sample.id}': target field '{self._target_field}' is "
                                    f"missing; fields are {sorted(sample.fields)[:12]}")
            target = sample.fields[self._target_field]
        elif self._target is not None:
            target = self._render(self._target, sample, "target.template")
        return RenderedSample(sample=sample, messages=messages, target=json_target(target))

    def render_all(self, samples: list[Sample]) -> list[RenderedSample]:
        """Render every sample; the first failure stops everything before any model call."""
        return [self.render(s) for s in samples]
