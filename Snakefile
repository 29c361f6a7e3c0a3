# clexp: catastrophic forgetting of a small MLP on Split-MNIST.
#   snakemake --cores 4 results/report.html
from snakemake.utils import min_version

min_version("8.20")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        REPORT,
    localrule: True


# Local runs: jobs fork from one warm process instead of importing torch & co. each time
# (src/clexp/jobserver.py). Not on cluster nodes, and not with conda/container deployment.
JOB_SERVER = {}
# Only this run's own server: not one announced by the environment Snakemake started in.
os.environ.pop(jobserver.SOCKET_VARIABLE, None)


onstart:
    if (
        config["job_server"]
        and workflow.local_exec
        and workflow.is_main_process
        and not workflow.deployment_settings.deployment_method
    ):
        JOB_SERVER["process"] = jobserver.start()


onsuccess:
    jobserver.stop(JOB_SERVER.pop("process", None))


onerror:
    jobserver.stop(JOB_SERVER.pop("process", None))
