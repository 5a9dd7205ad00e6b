"""savg.lm"""
