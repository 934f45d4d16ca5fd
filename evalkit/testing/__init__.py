"""At the edge — test material that runs real protocols: the loopback OpenAI-compatible dev server, its
scripted replies and fault injection. Used by tests, the quick start and benchmarks; never by the pipeline."""
