"""``classpulse``: run, train, evaluate and operate ClassPulse from one command.

Each group of commands lives in its own module and registers itself here;
heavy imports (TensorFlow, OpenCV, servers) happen inside the commands.
"""

from __future__ import annotations

import typer

from classpulse import (
    admin_commands,
    analyze_commands,
    demo,
    lrs_commands,
    lti_commands,
    model_commands,
    up,
)

app = typer.Typer(
    name="classpulse",
    help="Real-time facial-expression analytics for online classes.",
    no_args_is_help=True,
    add_completion=False,
)
model_commands.register(app)
admin_commands.register(app)
lrs_commands.register(app)
lti_commands.register(app)
demo.register(app)
analyze_commands.register(app)
up.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
