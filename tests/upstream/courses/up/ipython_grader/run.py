# A grader written against INGInious's Python API, run by inginious-ipython.
from inginious import feedback, input

answer = input.get_input("answer")
print("python sees", answer)
if answer == "forty-two":
    feedback.set_global_result("success")
    feedback.set_grade(100)
else:
    feedback.set_global_result("failed")
    feedback.set_grade(12.5)
feedback.set_problem_result("success", "q1")
feedback.set_problem_feedback("q1 from python", "q1")
feedback.set_global_feedback("python grader: " + answer)
feedback.set_custom_value("lang", input.get_lang())
feedback.set_state("py:" + answer)
