rule plot_run:
    output:
        accuracy_matrix=ACCURACY_MATRIX,
        learning_curves=LEARNING_CURVES,
        learning_curves_figure=LEARNING_CURVES_FIGURE,
    input:
        metrics=run_files(METRICS),
        train_logs=run_files(TRAIN_LOG),
        code=CODE["figures"],
    log:
        f"{LOG_DIR}/plot_run/{{experiment}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_run.py"
