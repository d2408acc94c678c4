/* stages: module list grows here. */
typedef int vc_stages_placeholder_;
