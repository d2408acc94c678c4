/* filters: module list grows here. */
typedef int vc_filters_placeholder_;
