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
    (5, "load", """
CREATE TABLE load_runs (
    load_id         VARCHAR PRIMARY KEY,
    kind            VARCHAR NOT NULL,          -- sweep (evalkit load) | run (an evalkit run with run.load)
    run_id          VARCHAR,                   -- kind run: the evalkit run whose requests were paced
    suite_name      VARCHAR NOT NULL,
    suite_hash      VARCHAR,
    model           VARCHAR NOT NULL,          -- the suite's name for the model
    model_ref       VARCHAR,                   -- what was called
    identity        JSON,                      -- the model's identity (endpoint, adapter, params)
    arrival         VARCHAR NOT NULL,          -- poisson | constant
    seed            INTEGER,
    max_in_flight   INTEGER NOT NULL,          -- the safety cap on requests in flight
    slo_p99_ms      DOUBLE,                    -- kind sweep: the SLO on p99 (from scheduled arrival)
    max_error_rate  DOUBLE,
    goodput_rps     DOUBLE,                    -- highest asked rate meeting the SLO, every lower rate meeting it too
    status          VARCHAR NOT NULL,          -- running | complete | interrupted | failed
    config          JSON,                      -- rates, requests or duration per rate, warm-up, argv, host
    created_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP
);
CREATE TABLE load_points (
    load_id         VARCHAR NOT NULL,
    rate_per_s      DOUBLE NOT NULL,           -- the asked arrival rate
    n_sent          INTEGER NOT NULL,
    n_ok            INTEGER NOT NULL,
    n_errors        INTEGER NOT NULL,
    n_cached        INTEGER NOT NULL,          -- kind run: answers reused from the cache (no call, not in the figures)
    error_rate      DOUBLE,                    -- n_errors / n_sent
    duration_s      DOUBLE,                    -- first scheduled arrival -> last completion
    achieved_rps    DOUBLE,                    -- n_ok / duration_s
    send_rate_rps   DOUBLE,                    -- (n_sent - 1) / (last send - first send)
    latency_ms_p50  DOUBLE,                    -- successful requests, measured from the send
    latency_ms_p95  DOUBLE,
    latency_ms_p99  DOUBLE,
    ttft_ms_p50     DOUBLE,                    -- streaming models only
    ttft_ms_p99     DOUBLE,
    e2e_ms_p99      DOUBLE,                    -- queueing delay + latency: scheduled arrival -> answer
    queue_ms_p50    DOUBLE,                    -- scheduled arrival -> sent
    queue_ms_p99    DOUBLE,
    queue_ms_max    DOUBLE,
    cap_waits       INTEGER NOT NULL,          -- arrivals that found max_in_flight in flight and waited
    cap_delay_ms_mean DOUBLE,                  -- their mean and longest wait
    cap_delay_ms_max DOUBLE,
    peak_in_flight  INTEGER,
    meets_slo       BOOLEAN,                   -- e2e_ms_p99 <= slo_p99_ms and error_rate <= max_error_rate
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (load_id, rate_per_s)
);
CREATE TABLE load_requests (
    load_id         VARCHAR NOT NULL,
    rate_per_s      DOUBLE NOT NULL,
    seq             INTEGER NOT NULL,          -- arrival order within the rate
    sample_id       VARCHAR NOT NULL,          -- the sample asked (samples cycle when a rate needs more)
    repeat          INTEGER NOT NULL,          -- kind run: the result row's repeat; sweep: the cycle
    scheduled_ms    DOUBLE NOT NULL,           -- scheduled arrival, from the rate's start
    queue_ms        DOUBLE,                    -- scheduled arrival -> sent (NULL: never sent)
    capped          BOOLEAN NOT NULL,          -- waited for the in-flight cap
    latency_ms      DOUBLE,                    -- sweep: from the send (kind run: in results)
    ttft_ms         DOUBLE,
    status          VARCHAR,                   -- ok | error | cached | NULL (never sent)
    error_kind      VARCHAR,
    PRIMARY KEY (load_id, rate_per_s, seq)
);
"""),
    (6, "run_error", """
ALTER TABLE runs ADD COLUMN error VARCHAR;     -- why a run is failed or interrupted (NULL otherwise)
"""),
    (7, "judgements", """
CREATE TABLE judgements (
    run_id        VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,            -- the judged model (pairwise: gates.candidate)
    sample_id     VARCHAR NOT NULL,
    repeat        INTEGER NOT NULL,
    kind          VARCHAR NOT NULL,            -- pointwise | pairwise
    pair_order    VARCHAR NOT NULL,            -- pointwise: '-'; pairwise: AB (candidate is A) | BA (candidate is B)
    other_model   VARCHAR,                     -- pairwise: the baseline it was compared with
    judge_model   VARCHAR NOT NULL,            -- scoring.judge.model
    status        VARCHAR NOT NULL,            -- ok | error (the call failed, or its verdict could not be read)
    raw           VARCHAR,                     -- the judge's reply as it came
    verdict       VARCHAR,                     -- the score (pairwise: winner A / B / tie) as the judge wrote it
    reasoning     VARCHAR,
    score         DOUBLE,                      -- quality in [0, 1] (pairwise: the candidate's 1 / 0.5 / 0)
    error         VARCHAR,
    latency_ms    DOUBLE,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd      DOUBLE,                      -- the judge call's cost: never in the judged model's cost_usd
    attempts      INTEGER,
    cache_hit     BOOLEAN NOT NULL,
    cache_key     VARCHAR NOT NULL,
    messages      JSON,                        -- what the judge was asked
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, model, sample_id, repeat, kind, pair_order)
);
"""),
]
