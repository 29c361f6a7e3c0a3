rule summarize:
    input:
        metrics=all_checkpoint_files(METRICS),
        code=CODE["figures"],
    output:
        summary=SUMMARY,
        by_experiment=SUMMARY_BY_EXPERIMENT,
    log:
        f"{LOG_DIR}/summarize.log",
    benchmark:
        BENCHMARKS["summarize"]
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/summarize.py"


rule published_table:
    input:
        summary=SUMMARY,
        published=PUBLISHED_SOURCE or [],
        code=CODE["published"],
    output:
        PUBLISHED_TABLE,
    log:
        f"{LOG_DIR}/published_table.log",
    localrule: True
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    params:
        settings=all_experiment_settings(),
    script:
        "../scripts/published_table.py"


rule report:
    input:
        summary=SUMMARY,
        by_experiment=SUMMARY_BY_EXPERIMENT,
        study=list(STUDY_TABLES.values()) + list(STUDY_FIGURES.values()),
        runs=[all_runs(p) for p in [ACCURACY_MATRIX, PROBE_TABLE]],
        # Per-run figures are embedded for the analysed seeds only; the others' tables are
        # linked (the comparisons show every seed).
        run_figures=[all_runs(p, ANALYSIS_SEEDS) for p in RUN_FIGURES.values()],
        task_figures=[multi_task_runs(p, ANALYSIS_SEEDS) for p in TASK_FIGURES.values()],
        checkpoint_table=CHECKPOINT_TABLE,
        untrained=UNTRAINED_TABLE,
        findings=FINDINGS,
        published=[PUBLISHED_TABLE] if PUBLISHED_SOURCE else [],
        comparisons=[path for _, _, path in comparison_figures()],
        tuning=tuned_experiments(SELECTION) + tuned_experiments(SWEEP_FIGURE),
        checkpoints=[all_checkpoint_files(p, ANALYSIS_SEEDS) for p in CHECKPOINT_FIGURES.values()],
        code=CODE["report"],
    output:
        REPORT,
    log:
        f"{LOG_DIR}/report.log",
    benchmark:
        BENCHMARKS["report"]
    localrule: True
    conda:
        CONDA_ENV
    # It runs last, alone: its figures are encoded side by side (capped at --cores).
    threads: 4
    resources:
        mem_mb=1000,
    params:
        experiments=EXPERIMENTS,
        seeds=SEEDS,
        analysis_seeds=ANALYSIS_SEEDS,
        tasks={e: num_tasks(e) for e in EXPERIMENTS},
        comparisons=COMPARISONS,
        comparison_figures={s: section_figures(s) for s in COMPARISONS},
        settings=protocol_settings(),
        paths={
            "summary": SUMMARY,
            "by_experiment": SUMMARY_BY_EXPERIMENT,
            "accuracy_matrix": ACCURACY_MATRIX,
            "probe_table": PROBE_TABLE,
            "run_figures": RUN_FIGURES,
            "task_figures": TASK_FIGURES,
            "checkpoints": CHECKPOINT_TABLE,
            "untrained": UNTRAINED_TABLE,
            "findings": FINDINGS,
            "comparison_figure": COMPARISON_FIGURE,
            "report": REPORT,
            **(
                {"published": PUBLISHED_TABLE, "published_source": PUBLISHED_SOURCE}
                if PUBLISHED_SOURCE
                else {}
            ),
            "checkpoint_figures": CHECKPOINT_FIGURES,
            "study_tables": STUDY_TABLES,
            "study_figures": STUDY_FIGURES,
            "benchmarks": BENCHMARK_DIR,
            "benchmark_files": run_benchmarks(),
            "tuning": {
                "experiments": {e: RUNS[e]["tuned"]["grid"] for e in GRIDS},
                "selection": SELECTION,
                "sweep": SWEEP_FIGURE,
                **TUNING,
            },
        },
    script:
        "../scripts/report.py"
