rule evaluate_checkpoint:
    output:
        metrics=METRICS,
    input:
        checkpoint=CHECKPOINT,
        data=DATA_FILE,
        code=CODE["evaluate"],
    params:
        run=run_params,
        probe=config["probe"],
        device=device_param,
    benchmark:
        BENCHMARKS["evaluate_checkpoint"]
    log:
        f"{LOG_DIR}/evaluate_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    conda:
        CONDA_ENV
    priority: SOON
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/evaluate_checkpoint.py"


# The control: the network each run starts from, before any training (task 0).
rule evaluate_untrained:
    output:
        metrics=UNTRAINED_METRICS,
    input:
        data=DATA_FILE,
        code=CODE["evaluate"],
    params:
        run=untrained_params,
        probe=config["probe"],
        device=device_param,
    benchmark:
        BENCHMARKS["evaluate_untrained"]
    log:
        f"{LOG_DIR}/evaluate_untrained/{{experiment}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    priority: SOON
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/evaluate_untrained.py"


# Only for the seeds of analysis.seeds: the per-checkpoint figures are drawn from it.
rule analyze_checkpoint:
    output:
        analysis=ANALYSIS,
    input:
        checkpoint=CHECKPOINT,
        data=DATA_FILE,
        code=CODE["evaluate"],
    params:
        run=run_params,
        analysis=config["analysis"],
        device=device_param,
    benchmark:
        BENCHMARKS["analyze_checkpoint"]
    log:
        f"{LOG_DIR}/analyze_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    conda:
        CONDA_ENV
    priority: SOON
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/analyze_checkpoint.py"
