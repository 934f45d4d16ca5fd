"""The DuckDB schema, as append-only migrations. Never edit one that has shipped: add the next.

Each migration runs in one transaction together with the row that records it, so a store is always
at a known version. Column meanings are documented in the README ("DuckDB schema").
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", """
CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    suite_name      VARCHAR NOT NULL,
    suite_version   VARCHAR,
    suite_path      VARCHAR,
    suite_hash      VARCHAR NOT NULL,
    suite_text      VARCHAR,
    dataset_path    VARCHAR,
    dataset_hash    VARCHAR,
    n_samples       INTEGER,
    repeats         INTEGER,
    status          VARCHAR NOT NULL,      -- running | complete | interrupted | failed
    created_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    git_commit      VARCHAR,
    git_dirty       BOOLEAN,
    evalkit_version VARCHAR,
    packages        JSON,                  -- {package: version} of the libraries that shape results
    config          JSON,                  -- the validated suite, secrets redacted
    argv            JSON,
    host            JSON
);
CREATE TABLE run_models (
    run_id      VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,          -- the suite's name for the model
    provider    VARCHAR NOT NULL,
    model_ref   VARCHAR,                   -- what was called: LiteLLM string or served model name
    identity    JSON,                      -- what the cache key is built from
    config      JSON,                      -- the suite's model entry, secrets redacted
    adapter     JSON,                      -- LoRA adapter identity (path, sha256, rank, base)
    status      VARCHAR NOT NULL,          -- running | complete | aborted | interrupted
    started_at  TIMESTAMP,
    finished_at TIMESTAMP,
    wall_s      DOUBLE,                    -- seconds spent calling this model (summed over resumes)
    n_calls     INTEGER,                   -- model calls made (cache hits excluded)
    error       VARCHAR,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE samples (
    run_id    VARCHAR NOT NULL,
    sample_id VARCHAR NOT NULL,
    position  INTEGER NOT NULL,            -- row position in the dataset file
    slice     VARCHAR,
    fields    JSON,
    messages  JSON,                        -- the rendered chat messages
    target    JSON,
    PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE results (
    run_id            VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,
    sample_id         VARCHAR NOT NULL,
    repeat            INTEGER NOT NULL,
    status            VARCHAR NOT NULL,    -- ok | error
    output            VARCHAR,             -- raw model text
    parsed            JSON,
    parse_error       VARCHAR,
    schema_valid      BOOLEAN,
    schema_errors     JSON,
    feasible          BOOLEAN,
    violations        JSON,
    quality           DOUBLE NOT NULL,
    correct           BOOLEAN NOT NULL,
    confidence        DOUBLE,
    score_error       VARCHAR,
    latency_ms        DOUBLE,
    ttft_ms           DOUBLE,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          DOUBLE,
    finish_reason     VARCHAR,
    resolved_model    VARCHAR,
    request_params    JSON,                -- exactly what was sent besides the messages
    logprobs          JSON,
    error             VARCHAR,
    error_kind        VARCHAR,
    attempts          INTEGER NOT NULL,
    cache_hit         BOOLEAN NOT NULL,
    cache_key         VARCHAR NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, model, sample_id, repeat)
);
CREATE INDEX results_cache_key ON results (cache_key);
CREATE TABLE metrics (
    run_id  VARCHAR NOT NULL,
    model   VARCHAR NOT NULL,
    metric  VARCHAR NOT NULL,
    value   DOUBLE,
    ci_low  DOUBLE,
    ci_high DOUBLE,
    n       INTEGER,
    PRIMARY KEY (run_id, model, metric)
);
"""),
    (2, "routing", """
CREATE TABLE routing_policies (
    run_id          VARCHAR NOT NULL,
    small           VARCHAR NOT NULL,          -- the model that answers unless escalated
    large           VARCHAR NOT NULL,          -- the model escalations go to
    signal          VARCHAR NOT NULL,          -- whose confidence routes: the small model or a router model
    style           VARCHAR NOT NULL,          -- cascade | router
    threshold       DOUBLE NOT NULL,           -- escalate when signal < threshold (-inf: never, inf: always)
    share_escalated DOUBLE NOT NULL,
    accuracy        DOUBLE NOT NULL,
    feasible_rate   DOUBLE,
    tail5           DOUBLE,
    brier           DOUBLE,
    cost_per_1k     DOUBLE,
    latency_ms_p50  DOUBLE,
    latency_ms_p95  DOUBLE,
    monthly_cost_usd DOUBLE,                   -- at volume_per_day requests
    volume_per_day  DOUBLE,
    pareto          BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE TABLE routing_recommendations (
    run_id      VARCHAR NOT NULL,
    small       VARCHAR NOT NULL,
    large       VARCHAR NOT NULL,
    signal      VARCHAR NOT NULL,
    style       VARCHAR NOT NULL,
    max_drop    DOUBLE NOT NULL,               -- target: accuracy within max_drop of the large model
    fold        VARCHAR NOT NULL,              -- which half chose the threshold, which half judged it
    detail      JSON NOT NULL,                 -- threshold, fit/test accuracy, CI, share escalated, cost
    created_at  TIMESTAMP NOT NULL
);
"""),
    (3, "retention", """
CREATE TABLE retention (
    run_id          VARCHAR NOT NULL,          -- the evalkit run these capability checks belong to
    model           VARCHAR NOT NULL,          -- suite model name, or CANDIDATE@base for the candidate's base model
    model_ref       VARCHAR,                   -- the served model name lm-eval called
    task            VARCHAR NOT NULL,          -- lm-eval task name
    metric          VARCHAR NOT NULL,          -- lm-eval metric, e.g. exact_match, acc
    filter          VARCHAR NOT NULL,          -- lm-eval filter the metric was computed after ('none' when none)
    value           DOUBLE,
    stderr          DOUBLE,                    -- lm-eval's standard error (NULL when it gives none)
    n               INTEGER,                   -- documents evaluated
    higher_is_better BOOLEAN,                  -- from the task's metric definition
    backend         VARCHAR NOT NULL,          -- lm-eval model type: local-completions | local-chat-completions
    lm_eval_version VARCHAR,
    config          JSON,                      -- task config, model args (secrets removed), limit, few-shot
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, model, task, metric, filter)
);
CREATE TABLE retention_samples (
    run_id    VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,
    task      VARCHAR NOT NULL,
    doc_id    INTEGER NOT NULL,                -- lm-eval's document index within the task
    metric    VARCHAR NOT NULL,
    filter    VARCHAR NOT NULL,
    value     DOUBLE,                          -- the per-document metric value lm-eval logged
    target    VARCHAR,
    response  VARCHAR,                         -- the filtered model response
    PRIMARY KEY (run_id, model, task, doc_id, metric, filter)
);
"""),
    (4, "warmup_and_client_lag", """
ALTER TABLE run_models ADD COLUMN warmup_calls INTEGER;      -- warm-up requests sent before timing (not results)
ALTER TABLE run_models ADD COLUMN warmup_latencies_ms JSON;  -- their latencies in order (null: a failed one)
ALTER TABLE run_models ADD COLUMN cold_start_ms DOUBLE;      -- the first warm-up request's latency
ALTER TABLE results ADD COLUMN client_lag_ms DOUBLE;         -- how late the client's event loop was during the call
"""),
]
