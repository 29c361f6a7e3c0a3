rule train_task:
    output:
        checkpoint=CHECKPOINT,
        log_table=TRAIN_LOG,
    input:
        data=DATA_FILE,
        previous=previous_checkpoint,
        code=CODE["train"],
    params:
        run=training_params,
        device=config["device"],
    log:
        f"{LOG_DIR}/train_task/{{experiment}}/seed{{seed}}/task{{task}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1500,
    script:
        "../scripts/train_task.py"
