rule summarize:
    output:
        summary=SUMMARY,
        by_experiment=SUMMARY_BY_EXPERIMENT,
    input:
        metrics=all_checkpoint_files(METRICS),
        code=CODE["figures"],
    log:
        f"{LOG_DIR}/summarize.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/summarize.py"


rule report:
    output:
        REPORT,
    input:
        summary=SUMMARY,
        by_experiment=SUMMARY_BY_EXPERIMENT,
        accuracy_matrices=all_runs(ACCURACY_MATRIX),
        learning_curves=all_runs(LEARNING_CURVES_FIGURE),
        code=CODE["report"],
    params:
        experiments=EXPERIMENTS,
        seeds=SEEDS,
    log:
        f"{LOG_DIR}/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/report.py"
