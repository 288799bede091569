#ifndef PROCTOR_COMMON_WIRE_H
#define PROCTOR_COMMON_WIRE_H

/*
 * The container protocol's constants, written once for both sides: the
 * agent (src/job) and the container runtime (src/runtime). Frames are
 * common/framer.h's; each holds one msgpack map whose "type" is one of the
 * names below (/work/shared/spec/CONTAINER_PROTOCOL.md §7, §9, §10).
 */

/* Agent -> runner. */
#define WIRE_MSG_START "start"
#define WIRE_MSG_RUN_STUDENT_STARTED "run_student_started"
#define WIRE_MSG_RUN_STUDENT_RETVAL "run_student_retval"

/* Runner -> agent (run_student also travels from a grading process to the
 * runner on the IPC socket, with the same fields). */
#define WIRE_MSG_RUN_STUDENT "run_student"
#define WIRE_MSG_RESULT "result"
#define WIRE_MSG_SSH_DEBUG "ssh_debug"
#define WIRE_MSG_SSH_STUDENT "ssh_student"

/* Grading container -> student container (the intern's socket). */
#define WIRE_MSG_RUN_STUDENT_COMMAND "run_student_command"

/* Return codes of run_student and _run_student_intern, as upstream. */
#define WIRE_RET_ROOT_REFUSED 251 // root asked where the runtime refuses it
#define WIRE_RET_MEMORY 252       // the student container ran out of memory
#define WIRE_RET_TIMEOUT 253      // killed at its time limit
#define WIRE_RET_ERROR 254        // refused, or the engine failed it

/* The unprivileged user of every grading image (`worker`, home /task). */
#define WIRE_WORKER_ID 4242
#define WIRE_WORKER_HOME "/task"

#endif
