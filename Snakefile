# activepam: active sampling of passive acoustic monitoring audio.
# Table of contents: each stage lives in workflow/rules/<stage>.smk; helpers in common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/inventory.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/indices.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/rounds.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/search.smk"


rule all:
    default_target: True
    input:
        all_targets,
        search_targets,


onsuccess:
    # with experts: where the annotation sets waiting for labels are, and the import command
    print_pending_rounds()
