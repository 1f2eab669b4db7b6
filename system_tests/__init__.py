"""System tests across apps: isolation matrix, faults, schema fuzzing, browser, serving."""
