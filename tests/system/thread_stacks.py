"""What each thread of a process waits in, for a test whose VMM stopped making progress."""
import os


def thread_stacks(pid):
    """A line per thread of @pid: id, name, state and its innermost kernel frames (the rig runs jobs as
    root). A vCPU in handle_userfault waits for the snapshot engine; a thread in futex_wait for a lock."""
    task = f"/proc/{pid}/task"
    lines = []
    try:
        tids = sorted(os.listdir(task), key=int)
    except OSError:
        return lines
    for tid in tids:
        try:
            comm = open(f"{task}/{tid}/comm").read().strip()
            state = open(f"{task}/{tid}/stat").read().rsplit(")", 1)[1].split()[0]
            stack = [line.split()[-1] for line in open(f"{task}/{tid}/stack").read().splitlines()[:6]]
        except OSError:
            continue
        lines.append(f"thread {tid} {comm} {state} {' < '.join(stack)}")
    return lines
