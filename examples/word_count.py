"""Word count: the "hello world" of stream processing.

Run it:  python examples/word_count.py [file]
With no file it counts a built-in text. Each line printed is a running count
(word, count), updated as every new occurrence arrives.
"""

from __future__ import annotations

import sys

from flinklet.common import Types
from flinklet.datastream import StreamExecutionEnvironment

TEXT = [
    "to be or not to be that is the question",
    "whether tis nobler in the mind to suffer",
    "the slings and arrows of outrageous fortune",
    "or to take arms against a sea of troubles",
]


def main(path: str | None = None) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    lines = env.read_text_file(path) if path else env.from_collection(TEXT, Types.STRING())
    (
        lines.flat_map(lambda line: line.lower().split(), output_type=Types.STRING())
        .map(lambda word: (word, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
        .key_by(lambda pair: pair[0])
        .sum(1)
        .print()
    )
    env.execute("word count")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
