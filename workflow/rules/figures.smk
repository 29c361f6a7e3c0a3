rule plot_checkpoint:
    input:
        forgetting_curve=FORGETTING_CURVE,
        relative_updates=RELATIVE_UPDATES,
        gradient_maps=GRADIENT_MAPS,
        analysis=ANALYSIS,
        code=CODE["figures"],
    output:
        **{
            name: report(
                path,
                caption="../report/checkpoint_figure.rst",
                category="Checkpoints",
                subcategory="{experiment}",
                labels={
                    "experiment": "{experiment}",
                    "figure": name,
                    "seed": "{seed}",
                    "task": "{task}",
                },
            )
            for name, path in CHECKPOINT_FIGURES.items()
        },
    log:
        f"{LOG_DIR}/plot_checkpoint/{{experiment}}/seed{{seed}}/task{{task}}.log",
    benchmark:
        BENCHMARKS["plot_checkpoint"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_checkpoint.py"


rule plot_run:
    input:
        metrics=run_files(METRICS),
        train_logs=run_files(TRAIN_LOG),
        code=CODE["figures"],
    output:
        **{
            f"{name}_figure": report(
                path,
                caption="../report/run_figure.rst",
                category="Runs",
                subcategory="{experiment}",
                labels={"experiment": "{experiment}", "figure": name, "seed": "{seed}"},
            )
            for name, path in RUN_FIGURES.items()
        },
        accuracy_matrix=ACCURACY_MATRIX,
        accuracy_matrix_til=ACCURACY_MATRIX_TIL,
        learning_curves=LEARNING_CURVES,
        probe_table=PROBE_TABLE,
        run_curves=RUN_CURVES,
    log:
        f"{LOG_DIR}/plot_run/{{experiment}}/seed{{seed}}.log",
    benchmark:
        BENCHMARKS["plot_run"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_run.py"


rule plot_run_tasks:
    input:
        accuracy_matrix=ACCURACY_MATRIX,
        probe_table=PROBE_TABLE,
        run_curves=RUN_CURVES,
        metrics=run_files(METRICS),
        code=CODE["figures"],
    output:
        **{
            name: report(
                path,
                caption="../report/run_figure.rst",
                category="Runs",
                subcategory="{experiment}",
                labels={"experiment": "{experiment}", "figure": name, "seed": "{seed}"},
            )
            for name, path in TASK_FIGURES.items()
        },
    log:
        f"{LOG_DIR}/plot_run_tasks/{{experiment}}/seed{{seed}}.log",
    benchmark:
        BENCHMARKS["plot_run_tasks"]
    priority: SOON
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_run_tasks.py"


rule checkpoint_table:
    input:
        metrics=all_checkpoint_files(METRICS),
        untrained=all_runs(UNTRAINED_METRICS),
        code=CODE["figures"],
    output:
        checkpoints=CHECKPOINT_TABLE,
        untrained=UNTRAINED_TABLE,
    log:
        f"{LOG_DIR}/checkpoint_table.log",
    benchmark:
        BENCHMARKS["checkpoint_table"]
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/checkpoint_table.py"


rule plot_comparisons:
    input:
        checkpoints=CHECKPOINT_TABLE,
        untrained=UNTRAINED_TABLE,
        code=CODE["figures"],
    output:
        [
            report(
                path,
                caption="../report/comparison_figure.rst",
                category="Comparisons",
                subcategory=section,
                labels={"section": section, "figure": name},
            )
            for section, name, path in comparison_figures()
        ],
    log:
        f"{LOG_DIR}/plot_comparisons.log",
    benchmark:
        BENCHMARKS["plot_comparisons"]
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
    params:
        groups=COMPARISONS,
        figures=[[section, name, path] for section, name, path in comparison_figures()],
    script:
        "../scripts/plot_comparisons.py"


rule findings:
    input:
        checkpoints=CHECKPOINT_TABLE,
        untrained=UNTRAINED_TABLE,
        summary=SUMMARY,
        code=CODE["findings"],
    output:
        FINDINGS,
    log:
        f"{LOG_DIR}/findings.log",
    benchmark:
        BENCHMARKS["findings"]
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/findings.py"


rule plot_study:
    input:
        summary=SUMMARY,
        run_curves=all_runs(RUN_CURVES),
        metrics=all_checkpoint_files(METRICS),
        code=CODE["figures"],
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
    log:
        f"{LOG_DIR}/plot_study.log",
    benchmark:
        BENCHMARKS["plot_study"]
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    params:
        settings=all_experiment_settings(),
    script:
        "../scripts/plot_study.py"
