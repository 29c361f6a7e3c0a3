rule evaluate_checkpoint:
    input:
        checkpoint=CHECKPOINT,
        data=DATA_FILE,
        selection=selection_of,
        code=CODE["evaluate"],
    output:
        metrics=METRICS,
    log:
        f"{LOG_DIR}/evaluate_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    benchmark:
        BENCHMARKS["evaluate_checkpoint"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    params:
        run=run_params,
        probe=config["probe"],
        device=device_param,
    script:
        "../scripts/evaluate_checkpoint.py"


# The control: the network each run starts from, before any training (task 0).
rule evaluate_untrained:
    input:
        data=DATA_FILE,
        selection=untrained_selection,
        code=CODE["evaluate"],
    output:
        metrics=UNTRAINED_METRICS,
    log:
        f"{LOG_DIR}/evaluate_untrained/{{experiment}}/seed{{seed}}.log",
    benchmark:
        BENCHMARKS["evaluate_untrained"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    params:
        run=untrained_params,
        probe=config["probe"],
        device=device_param,
    script:
        "../scripts/evaluate_untrained.py"


# Only for the seeds of analysis.seeds: the per-checkpoint figures are drawn from it.
rule analyze_checkpoint:
    input:
        checkpoint=CHECKPOINT,
        data=DATA_FILE,
        selection=selection_of,
        code=CODE["evaluate"],
    output:
        analysis=ANALYSIS,
    log:
        f"{LOG_DIR}/analyze_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    benchmark:
        BENCHMARKS["analyze_checkpoint"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    params:
        run=run_params,
        analysis=config["analysis"],
        device=device_param,
    script:
        "../scripts/analyze_checkpoint.py"
