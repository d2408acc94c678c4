/* manifests: module list grows here. */
typedef int vc_manifests_placeholder_;
