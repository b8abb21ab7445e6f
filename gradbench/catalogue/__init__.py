"""What can run: the tasks, the strategies and their gradient hooks, the model knobs, and
the plugins that add strategies."""
