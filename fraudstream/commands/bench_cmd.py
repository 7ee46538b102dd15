"""placeholder"""
import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    pass
