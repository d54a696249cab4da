"""The bench's reduction of py-spy's collapsed stacks (``--profile``) to the frames where the CPU went."""

from __future__ import annotations

from pathlib import Path

from bench.profiling import summary


def test_own_time_and_time_on_the_stack_are_shares_of_all_samples(tmp_path: Path) -> None:
    folded = tmp_path / "post-post.folded"
    folded.write_text(
        "run (/work/main/kicau/serve.py:40);create (/work/main/services/post/service.py:600);"
        "insert (/work/main/services/post/store.py:126) 6\n"
        "run (/work/main/kicau/serve.py:40);create (/work/main/services/post/service.py:610) 2\n"
        "run (/work/main/kicau/serve.py:41);flush (/x/site-packages/redis/connection.py:9) 2\n"
        "a line that is no sample\n"
    )
    lines = summary(folded, top=2)
    assert lines[0] == "10 samples; own time:"
    # One function's samples from several lines count together; paths lose the checkout's prefix.
    assert lines[1:3] == ["   60.0%  insert (services/post/store.py)", "   20.0%  create (services/post/service.py)"]
    stack = lines[lines.index("on the stack:") + 1:]
    # A frame on every sampled stack says nothing and is left out; each frame counts once a sample.
    assert stack[0] == "   80.0%  create (services/post/service.py)"
    assert not any("serve.py" in line for line in stack)


def test_a_profile_with_no_samples_says_so(tmp_path: Path) -> None:
    folded = tmp_path / "empty.folded"
    folded.write_text("")
    assert summary(folded) == ["no samples"]
