rule plot_checkpoint:
    output:
        **{
            name: report(
                path,
                caption="../report/checkpoint_figure.rst",
                category="Checkpoints",
                subcategory="{experiment}",
                labels={"figure": name, "seed": "{seed}", "task": "{task}"},
            )
            for name, path in CHECKPOINT_FIGURES.items()
        },
    input:
        forgetting_curve=FORGETTING_CURVE,
        relative_updates=RELATIVE_UPDATES,
        gradient_maps=GRADIENT_MAPS,
        analysis=ANALYSIS,
        code=CODE["figures"],
    benchmark:
        f"{BENCHMARK_DIR}/plot_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.tsv"
    log:
        f"{LOG_DIR}/plot_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_checkpoint.py"


rule plot_run:
    output:
        accuracy_matrix=ACCURACY_MATRIX,
        accuracy_matrix_til=ACCURACY_MATRIX_TIL,
        learning_curves=LEARNING_CURVES,
        probe_table=PROBE_TABLE,
        run_curves=RUN_CURVES,
        **{
            f"{name}_figure": report(
                path,
                caption="../report/run_figure.rst",
                category="Runs",
                subcategory="{experiment}",
                labels={"figure": name, "seed": "{seed}"},
            )
            for name, path in RUN_FIGURES.items()
        },
    input:
        metrics=run_files(METRICS),
        train_logs=run_files(TRAIN_LOG),
        code=CODE["figures"],
    benchmark:
        f"{BENCHMARK_DIR}/plot_run/{{experiment}}/seed{{seed}}.tsv"
    log:
        f"{LOG_DIR}/plot_run/{{experiment}}/seed{{seed}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_run.py"


rule plot_study:
    localrule: True
    output:
        **{f"{name}_table": path for name, path in STUDY_TABLES.items()},
        **{
            f"{name}_figure": report(
                path,
                caption="../report/study_figure.rst",
                category="Study",
                labels={"figure": name},
            )
            for name, path in STUDY_FIGURES.items()
        },
    input:
        summary=SUMMARY,
        run_curves=all_runs(RUN_CURVES),
        metrics=all_checkpoint_files(METRICS),
        code=CODE["figures"],
    params:
        settings=all_experiment_settings(),
    benchmark:
        f"{BENCHMARK_DIR}/plot_study.tsv"
    log:
        f"{LOG_DIR}/plot_study.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_study.py"
