rule prepare_data:
    output:
        DATA_FILE,
    input:
        code=CODE["data"],
    params:
        dataset=config["dataset"],
        data_root=config["data_root"],
        download=config["download"],
        subset=config["data_subset"],
    benchmark:
        f"{BENCHMARK_DIR}/prepare_data.tsv"
    log:
        f"{LOG_DIR}/prepare_data.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_data.py"
