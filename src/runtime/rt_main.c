// proctor-runtime: one static multi-call binary installed in grading images
// under INGInious's tool names. It dispatches on basename(argv[0]), or on
// argv[1] when called as `proctor-runtime <tool> ...`.
#include "rt_common.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
} g_tools[] = {
    {"INGInious", rt_cmd_runner},
    {"_run_student_intern", rt_cmd_intern},
    {"run_student", rt_cmd_run_student},
    {"getinput", rt_cmd_getinput},
    {"feedback", rt_cmd_feedback},
    {"feedback-result", rt_cmd_fb_result},
    {"feedback-grade", rt_cmd_fb_grade},
    {"feedback-msg", rt_cmd_fb_msg},
    {"feedback-custom", rt_cmd_fb_custom},
    {"feedback-state", rt_cmd_fb_state},
    {"tag", rt_cmd_tag},
    {"tag-set", rt_cmd_tag_set},
    {"archive", rt_cmd_archive},
    {"parsetemplate", rt_cmd_parsetemplate},
    {"rst-code", rt_cmd_rst_code},
    {"rst-msgblock", rt_cmd_rst_msgblock},
    {"rst-indent", rt_cmd_rst_indent},
    {"rst-image", rt_cmd_rst_image},
};

int main(int argc, char **argv)
{
    const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argc > 0 ? argv[0] : "";
    if (!strcmp(base, "proctor-runtime") && argc > 1) {
        argv++;
        argc--;
        base = argv[0];
    }
    for (size_t i = 0; i < sizeof(g_tools) / sizeof(g_tools[0]); i++)
        if (!strcmp(base, g_tools[i].name))
            return g_tools[i].fn(argc, argv);
    fprintf(stderr,
            "usage: proctor-runtime TOOL [ARGS...], or a link named after the tool\ntools:");
    for (size_t i = 0; i < sizeof(g_tools) / sizeof(g_tools[0]); i++)
        fprintf(stderr, " %s", g_tools[i].name);
    fputc('\n', stderr);
    return 2;
}
