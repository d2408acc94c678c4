/* pipeline: module list grows here. */
typedef int vc_pipeline_placeholder_;
