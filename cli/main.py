import click

@click.group()
def main():
    """trirl command line."""
