rule train_task:
    input:
        data=DATA_FILE,
        previous=previous_checkpoint,
        code=CODE["train"],
    output:
        checkpoint=CHECKPOINT,
        log_table=TRAIN_LOG,
        forgetting_curve=FORGETTING_CURVE,
        relative_updates=RELATIVE_UPDATES,
        gradient_maps=GRADIENT_MAPS,
    log:
        f"{LOG_DIR}/train_task/{{experiment}}/seed{{seed}}/task{{task}}.log",
    benchmark:
        BENCHMARKS["train_task"]
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    params:
        run=training_params,
        device=device_param,
        curve_stride=config["analysis"]["forgetting_curve_stride"],
        curve_images_per_task=config["analysis"]["forgetting_curve_images_per_task"],
        instruments=analysis_on,
    script:
        "../scripts/train_task.py"
