# Choosing settings on the validation split (clexp.tuning): every grid point of a tuned
# experiment trains on the training split minus the validation images and is measured on them;
# the selection then feeds the experiment's own training jobs (selection_of in common.smk).


rule tune_point:
    input:
        data=DATA_FILE,
        code=CODE["tune"],
    output:
        validation=TUNE_POINT,
    log:
        f"{LOG_DIR}/tune_point/{{experiment}}/{{point}}/seed{{seed}}.log",
    benchmark:
        BENCHMARKS["tune_point"]
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    params:
        point=point_params,
        tuning=TUNING,
        device=device_param,
    script:
        "../scripts/tune_point.py"


rule select_setting:
    input:
        validations=point_validations,
        code=CODE["select"],
    output:
        selection=SELECTION,
        sweep=SWEEP_FIGURE,
    log:
        f"{LOG_DIR}/select_setting/{{experiment}}.log",
    benchmark:
        BENCHMARKS["select_setting"]
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
    params:
        grid=lambda wildcards: RUNS[wildcards.experiment]["tuned"]["grid"],
    script:
        "../scripts/select_setting.py"
