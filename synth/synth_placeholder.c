/* synth: module list grows here. */
typedef int vc_synth_placeholder_;
